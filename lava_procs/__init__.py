"""Everything that runs inside Lava: processes, their CPU models, the network builder, the runner.

Process packages (``dlif``, ``monitor``, ``io``) hold only ``process.py`` and ``models.py``:
Lava's compiler executes every ``.py`` file beside a process module when it looks for models.
"""

from rssnn import _refuse_a_bare_name
from rssnn.lava_guard import import_lava_runtime

_refuse_a_bare_name(__name__)  # its modules import each other relatively: one package, one copy
import_lava_runtime()  # before any Lava module: Lava insists on fixing the start method itself
