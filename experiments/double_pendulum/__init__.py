"""The double-pendulum experiment of the AFRNN paper (Section 5.3, eq. 19-20, Table 3).

``physics`` (vector field, energy, initial conditions), ``generate`` (ground truth in one batched solve),
``reference`` (scipy DOP853 check), ``task`` (inputs and targets of the prediction task), ``train`` (the five
models), ``table`` and ``plots`` (results), ``cli`` (``python -m experiments double-pendulum
generate|train|table|demo``).
"""
