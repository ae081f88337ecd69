# Root conftest: runs before nbval starts any kernel, so notebooks under test run quiet and on the CPU,
# exactly as their stored outputs were made (python -m ebm_teach.tools.notebooks refresh).
import os

os.environ.setdefault("EBM_TEACH_QUIET", "1")
os.environ.setdefault("EBM_TEACH_DEVICE", "cpu")
os.environ.setdefault("PYTHONHASHSEED", "0")
