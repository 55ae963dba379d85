"""Write .ci/imported-modules.txt: the installed modules the test suite imports, in every process it starts.

`.ci/run` compiles exactly these to bytecode before the tests, on every core: the suite's ~80 processes
each import torch and transformers, and compiling all 13,800 installed modules takes twice as long as
compiling the ~4,800 they use. The list only decides what is compiled ahead; whatever it misses is compiled
on first import. Regenerate it after a dependency change, from the repository root, in the CI environment:

    python .ci/record_imports.py   # runs the whole test suite once
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

LIST = Path(__file__).with_name("imported-modules.txt")

# Loaded by every Python process of the run (it is first on PYTHONPATH): at exit, the process names the
# installed modules it imported, relative to site-packages.
RECORDER = '''
import atexit, os, sys

def _record_imports():
    root = os.environ["TRM_RECORD_SITE_PACKAGES"] + os.sep
    files = {getattr(module, "__file__", None) or "" for module in list(sys.modules.values())}
    names = sorted(path[len(root):] for path in files if path.startswith(root) and path.endswith(".py"))
    with open(os.path.join(os.environ["TRM_RECORD_DIR"], f"{os.getpid()}.txt"), "w") as out:
        out.write("\\n".join(names))

atexit.register(_record_imports)
'''


def main() -> int:
    site_packages = sysconfig.get_path("purelib")
    with tempfile.TemporaryDirectory() as scratch:
        hook, records = Path(scratch, "hook"), Path(scratch, "records")
        hook.mkdir()
        records.mkdir()
        (hook / "sitecustomize.py").write_text(RECORDER)
        env = {**os.environ, "TRM_RECORD_DIR": str(records), "TRM_RECORD_SITE_PACKAGES": site_packages,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
        tests = subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"], env=env)
        if tests.returncode != 0:
            print("record_imports: the test suite failed; the list was not written", file=sys.stderr)
            return tests.returncode
        processes = list(records.iterdir())
        names = sorted({line for record in processes for line in record.read_text().splitlines() if line})
    LIST.write_text("\n".join(names) + "\n")
    print(f"record_imports: {len(names)} modules imported by {len(processes)} processes -> {LIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
