-- Argo CD resource action "resume" for modelrollout.io/ModelRollout: continue a paused rollout.
-- Removes the annotation, as `kubectl modelrollout resume` does.
if type(obj.metadata.annotations) == "table" then
  obj.metadata.annotations["modelrollout.io/paused"] = nil
end
return obj
