"""Process whose model blocks forever in its first step."""

from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess


class Hang(AbstractProcess):
    def __init__(self) -> None:
        super().__init__()
        self.s_out = OutPort(shape=(1,))
