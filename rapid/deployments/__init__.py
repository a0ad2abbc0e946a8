"""Gradual deployments of an alias, as SAM's DeploymentPreference asks CodeDeploy for them.

- ``preferences``: SAM's Types as steps of weight and hold, and the preference itself (pure).
- ``machine``: a deployment's lifecycle as a transition table (pure).
- ``alarms``: CloudWatch-style alarms evaluated on the function's own invocation records (pure).
- ``appspec``: CodeDeploy's Lambda AppSpec, for CreateDeployment (pure).
- ``model``: what is kept of a deployment (the registry's store, kind ``deployment``).
- ``hooks``: the PreTraffic / PostTraffic hook invocations and their reported verdicts.
- ``service``: ``Deployments``, which runs them: ``host.deployments.start(...)``.

The APIs are ``rapid.api.codedeploy`` (``X-Amz-Target: CodeDeploy_20141006.*``) and
``rapid.api.deployments_view`` (``/_rapid/api/deployments``); the commands are ``rapid
deployments``, ``rapid deploy`` and ``rapid pipeline run`` (``rapid.cli``).
"""
