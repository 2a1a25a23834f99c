"""The harness runs on the compute node with only the standard library and torch.

``harness.runner`` is the trusted part (spec, key, isolation, time limits, signed result.json);
``harness.evaluator`` runs a task's tests and timings in a separate process; ``harness.protocol`` is the
result contract that the gateway imports too.
"""
