"""Console entry points: `modelrollout` (`main`: operator, sandbox, demo, tools, crds, docs) and
`kubectl-modelrollout` (`kubectl`: status, promote, abort, pause, resume, retry, undo, lint), with `view`
rendering status for a terminal, `lint` checking manifests and `reference` generating the field reference.

Import the submodule you need; nothing is re-exported, so a plugin call loads only what it uses.
"""

__all__: list[str] = []
