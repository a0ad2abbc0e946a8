"""SAM and CloudFormation templates: load one into plain resource values (``loader``), then
apply it through the control plane (``applier``).

See ``rapid.template.loader`` for what a loaded template holds and
``rapid.template.applier`` for how each resource type becomes functions, versions,
aliases, layers, queues, streams, mappings, URLs, schedules and a local HTTP API.
"""

from rapid.template.loader import Resource, Template, TemplateError, load_template

__all__ = ["Resource", "Template", "TemplateError", "load_template"]
