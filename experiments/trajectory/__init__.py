"""Trajectory prediction: predict the rest of each trajectory from its first observation(s), on a built-in
ODE system or on your own data (``python -m experiments trajectory``).

``systems`` (the ODE systems, each an f(t, y) nn.Module), ``simulate`` (batched ground truth through
``solvers.odeint``), ``data`` (the .npz / .csv formats and their checks), ``task`` (split, normalisation,
model time, inputs, targets, reference predictors), ``settings`` (the run's settings and presets),
``flags`` (command-line flags derived from the settings), ``model`` (the predictor around ``build_rnn``),
``train`` (one model through the shared loop), ``report`` (table and result.json), ``plots``, ``cli``.
"""
