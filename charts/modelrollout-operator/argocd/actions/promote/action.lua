-- Argo CD resource action "promote" for modelrollout.io/ModelRollout: advance one step (from shadow to the first step, past the last step: promotion).
-- Sets the annotation `kubectl modelrollout promote` sets; the operator acts once per new command id.
local os = require("os")  -- Argo CD's safe os (time and date only); there is no os global

if type(obj.metadata.annotations) ~= "table" then
  obj.metadata.annotations = {}
end
-- A command id like the kubectl plugin's: a UTC timestamp, then the object's resourceVersion, so two
-- clicks within one second still differ once the first has landed.
local id = os.date("!%Y-%m-%dT%H:%M:%SZ") .. "-argocd-" .. tostring(obj.metadata.resourceVersion)
obj.metadata.annotations["modelrollout.io/promote"] = id
return obj
