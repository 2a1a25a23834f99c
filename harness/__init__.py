"""The harness runs on the compute node with only the standard library and torch.

``harness.runner`` is the trusted part (spec, key, isolation, time limits, signed result.json);
``harness.evaluator`` runs a task's tests and timings in a separate process (``harness.judge`` decides),
and starts ``harness.usercode``, the only process that imports user code; ``harness.protocol``,
``harness.run_result`` and ``harness.phase_result`` are the result contract that the gateway imports too.
"""
