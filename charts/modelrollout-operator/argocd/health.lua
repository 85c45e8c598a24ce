-- Argo CD health check for modelrollout.io/ModelRollout.
-- Argo CD runs this with the live object in the global `obj` and reads the returned {status, message}.
-- The one copy of the script: examples/argocd/argocd-cm.yaml embeds it verbatim (a unit test compares them).

local WAITING = "Waiting for the operator to report the rollout's status"

local function result(status, message)
  return {status = status, message = message}
end

local function describe(status, fallback)
  if type(status.message) == "string" and status.message ~= "" then
    return status.message
  end
  return fallback
end

local function condition_of(status, kind)
  if type(status.conditions) ~= "table" then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local status = obj.status
if type(status) ~= "table" then
  return result("Progressing", WAITING)
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local observed = status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  return result("Progressing", "Waiting for the operator to observe generation " .. generation ..
    " (status describes generation " .. observed .. ")")
end

-- A spec the operator refuses keeps the last phase (none yet, or even Succeeded): the refusal must show.
local invalid = condition_of(status, "InvalidSpec")
if invalid ~= nil and invalid.status == "True" then
  return result("Degraded", describe(invalid, "The operator refuses the spec"))
end

local phase = status.phase
if phase == nil then
  return result("Progressing", WAITING)
end
if phase == "Succeeded" then
  return result("Healthy", describe(status, "version " .. tostring(status.stableVersion) .. " serves users"))
end
local progressing = condition_of(status, "Progressing")
if (phase == "Canary" or phase == "Preview") and progressing ~= nil and progressing.reason == "AwaitingPromotion" then
  return result("Suspended", describe(status, "Waiting for a manual promotion"))
end
if phase == "Paused" then
  return result("Suspended", describe(status, "Paused"))
end
if phase == "Pending" or phase == "Warming" or phase == "Shadow" or phase == "Canary" or phase == "Preview"
    or phase == "Baking" or phase == "Experiment" or phase == "Promoting" then
  return result("Progressing", describe(status, phase))
end
if phase == "RolledBack" or phase == "Blocked" or phase == "Failed" then
  return result("Degraded", describe(status, phase))
end
return result("Unknown", "Unknown phase " .. tostring(phase))
