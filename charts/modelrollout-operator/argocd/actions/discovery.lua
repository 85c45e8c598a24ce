-- Argo CD resource action discovery for modelrollout.io/ModelRollout: which of the actions below apply now.
-- Each action sets the same annotation as the kubectl plugin (kubectl modelrollout promote|abort|pause|resume|
-- retry); the operator acts on it once and records the command id in status.acknowledged.
-- Argo CD runs this without the string and math libraries (base functions and table only; os by require).

local phase = nil
if type(obj.status) == "table" then
  phase = obj.status.phase
end
local annotations = {}
if type(obj.metadata) == "table" and type(obj.metadata.annotations) == "table" then
  annotations = obj.metadata.annotations
end
local paused = phase == "Paused" or annotations["modelrollout.io/paused"] ~= nil

local function one_of(value, set)
  for _, item in ipairs(set) do
    if value == item then
      return true
    end
  end
  return false
end

-- The phases each command acts in (PROMOTABLE, IN_FLIGHT, FAILED in api/status.py); an action outside them
-- is shown disabled, as the kubectl plugin refuses it without --force.
local promotable = one_of(phase, {"Shadow", "Canary", "Preview", "Baking", "Experiment"})
local in_flight = phase == nil or one_of(phase, {"Pending", "Warming", "Shadow", "Canary", "Preview", "Baking", "Experiment",
  "Promoting", "Paused"})
local failed = one_of(phase, {"RolledBack", "Blocked", "Failed"})

local actions = {}
actions["promote"] = {disabled = not promotable, displayName = "Promote one step", iconClass = "fa fa-fw fa-forward"}
actions["promote-full"] = {
  disabled = not promotable, displayName = "Promote fully", iconClass = "fa fa-fw fa-fast-forward"
}
actions["abort"] = {disabled = not in_flight, displayName = "Abort (roll back)", iconClass = "fa fa-fw fa-undo"}
actions["pause"] = {disabled = paused, displayName = "Pause", iconClass = "fa fa-fw fa-pause"}
actions["resume"] = {disabled = not paused, displayName = "Resume", iconClass = "fa fa-fw fa-play"}
actions["retry"] = {disabled = not failed, displayName = "Retry from the start", iconClass = "fa fa-fw fa-redo"}
return actions
