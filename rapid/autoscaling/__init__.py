"""Autoscaling of provisioned concurrency, as Application Auto Scaling does it for Lambda.

- ``tracking``: the pure rules: the utilization metric averaged per minute, a target
  tracking policy's two alarms, cooldowns, the capacity it asks for.
- ``scheduled``: when a scheduled action fires (``rate()``, ``cron()``, ``at()``).
- ``model``: what is kept (targets, policies, actions, activities), in the registry's store.
- ``service``: the operations the API calls, with their checks.
- ``runner``: the loop that measures, decides and changes provisioned concurrency.

The API is ``rapid.api.autoscaling`` (``X-Amz-Target: AnyScaleFrontendService.*``).
"""
