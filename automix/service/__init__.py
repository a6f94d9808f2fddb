"""The HTTP service (`app`), its SQLite job store (`store`), worker processes (`worker`) and
the audition page (``static/``). Start it with ``automix serve``."""
