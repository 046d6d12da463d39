"""The emulator ships in the package (docs/architecture.md, "Emulator contract") on the condition that the
provider never loads it: importing every other module leaves no ``airflow_provider_cplugin.emulator`` module."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import importlib, json, pathlib, sys
import airflow_provider_cplugin as package
# From the files, not pkgutil.walk_packages: walking imports every package it descends into, the emulator's too.
root = pathlib.Path(package.__file__).parent
names = sorted(
    ".".join((package.__name__, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
    for path in root.rglob("*.py")
    if path.relative_to(root).parts[0] != "emulator"
)
for name in names:
    importlib.import_module(name)
package.get_provider_info()
print(json.dumps({"imported": len(names), "emulator": sorted(m for m in sys.modules if ".emulator" in m)}))
"""


def test_no_provider_module_imports_the_emulator() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["imported"] > 60  # every module of the provider, not an empty walk
    assert result["emulator"] == []
