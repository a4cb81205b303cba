"""How results are shown: the estimate's terminal ``table``, the pruning report (``prune``), pictures (``plot``)."""
