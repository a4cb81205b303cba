"""Hardware: what the layers run on. Specs (``spec``), the file schema (``schema``), loading (``load``), area."""

from eyesim.hardware.load import hardware_from_dict, load_hardware, with_overrides
from eyesim.hardware.schema import COMPRESSIONS, COSTS, FIELDS, LEVELS, NOT_GIVEN
from eyesim.hardware.spec import Bits, Hardware, hardware_to_dict
