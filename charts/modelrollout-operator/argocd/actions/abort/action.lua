-- Argo CD resource action "abort" for modelrollout.io/ModelRollout: roll the candidate back to the stable version.
-- Sets the annotation `kubectl modelrollout abort` sets; the operator acts once per new command id.
local os = require("os")  -- Argo CD's safe os (time and date only); there is no os global

if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
-- A command id like the kubectl plugin's: a UTC timestamp, then the object's resourceVersion, so two
-- clicks within one second still differ once the first has landed.
local id = os.date("!%Y-%m-%dT%H:%M:%SZ") .. "-argocd-" .. tostring(obj.metadata.resourceVersion)
obj.metadata.annotations["modelrollout.io/abort"] = id
return obj
