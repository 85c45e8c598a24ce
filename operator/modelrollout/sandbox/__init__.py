"""The local stack behind `make demo` and the tests: a real control plane from cached binaries (`cluster`,
`tools`), a simulated fleet of model servers (`fleet`), traffic that follows the live routes (`trafficgen`),
scenario files (`scenario`), the demo runner (`demo`) and its HTML report (`report`).

Import the submodule you need; nothing is re-exported, so importing the package starts nothing.
"""

__all__: list[str] = []
