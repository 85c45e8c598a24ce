-- Argo CD resource action "pause" for modelrollout.io/ModelRollout: hold the traffic where it is until resumed.
-- Sets the annotation `kubectl modelrollout pause` sets.
if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelrollout.io/paused"] = "true"
return obj
