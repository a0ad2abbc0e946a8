"""What ``Ref`` and ``Fn::GetAtt`` give for each resource type, on this machine.

==============================  ===========================  ==================================
type                            Ref                          Fn::GetAtt
==============================  ===========================  ==================================
Serverless / Lambda Function    its name                     Arn
SQS::Queue                      its URL on rapid's port      Arn, QueueName, QueueUrl
Kinesis::Stream                 its name                     Arn
LayerVersion (both)             the layer version's ARN
Lambda::Version                 the version's ARN            Version, FunctionArn
Lambda::Alias                   the alias's ARN              AliasArn (Ref)
Lambda::Url                     the function's ARN           FunctionUrl, FunctionArn
Serverless Api / HttpApi        its logical id                   RootResourceId, ApiEndpoint
anything else                   its logical id               Arn (a made-up ARN)
==============================  ===========================  ==================================

A function's name is its ``FunctionName`` or else its logical id (as ``sam local`` names
it); a queue's, stream's or layer's likewise. SAM's implicit ``ServerlessRestApi`` and
``ServerlessHttpApi`` resolve too. ``MyFunction.Alias`` and ``MyFunction.Version``
(SAM's references to the alias and version ``AutoPublishAlias`` makes) resolve too. Values
only known once applied (a layer version's number, a version's number, a URL) come from
``Template.known`` when the applier has set them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rapid.template.intrinsics import IntrinsicError

if TYPE_CHECKING:
    from rapid.template.loader import Template

FUNCTIONS = ("AWS::Serverless::Function", "AWS::Lambda::Function")
LAYERS = ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion")
APIS = ("AWS::Serverless::Api", "AWS::Serverless::HttpApi")
IMPLICIT_APIS = ("ServerlessRestApi", "ServerlessHttpApi")


def _prop(t: Template, name: str, key: str) -> Any:
    raw = (t.resources[name].raw.get("Properties") or {}).get(key)
    if raw is None:
        return None
    return t.resolver(t.resources[name]).value(raw, t.resources[name].line)


def physical_name(t: Template, name: str) -> str:
    r = t.resources[name]
    key = {"AWS::SQS::Queue": "QueueName", "AWS::Kinesis::Stream": "Name",
           "AWS::Serverless::LayerVersion": "LayerName", "AWS::Lambda::LayerVersion": "LayerName"}.get(
        r.type, "FunctionName")
    value = _prop(t, name, key) if r.type in FUNCTIONS or key != "FunctionName" else None
    return str(value) if value else name


def function_arn(t: Template, function: str) -> str:
    return f"arn:aws:lambda:{t.region}:{t.account}:function:{function}"


def _function_of(t: Template, name: str, line: int | None) -> str:
    """The function name a Version, Alias or Url names in FunctionName (a name or an ARN)."""
    value = _prop(t, name, "FunctionName")
    if not isinstance(value, str) or not value:
        raise IntrinsicError(f"{name} has no FunctionName", line)
    return value.rsplit(":function:", 1)[-1].split(":")[0]


def ref(t: Template, name: str, line: int | None) -> Any:
    if (name, "Ref") in t.known:
        return t.known[(name, "Ref")]
    base, dot, tail = name.partition(".")
    if dot and base in t.resources and t.resources[base].type == "AWS::Serverless::Function":
        fn = physical_name(t, base)
        if tail == "Alias":
            alias = _prop(t, base, "AutoPublishAlias")
            if not alias:
                raise IntrinsicError(f"{base}.Alias: {base} has no AutoPublishAlias", line)
            return f"{function_arn(t, fn)}:{alias}"
        if tail == "Version":
            return t.known.get((base, "Version"), f"{function_arn(t, fn)}:1")
    if name in IMPLICIT_APIS and name not in t.resources:
        return name  # the API SAM makes for Api / HttpApi events without an ApiId
    if name not in t.resources:
        raise IntrinsicError(f"Template format error: Unresolved resource dependencies [{name}] in the "
                             "Resources block of the template", line)
    r = t.resources[name]
    if r.type in FUNCTIONS:
        return physical_name(t, name)
    if r.type == "AWS::SQS::Queue":
        return f"{t.endpoint}/{t.account}/{physical_name(t, name)}"
    if r.type == "AWS::Kinesis::Stream":
        return physical_name(t, name)
    if r.type in LAYERS:
        return f"arn:aws:lambda:{t.region}:{t.account}:layer:{physical_name(t, name)}:1"
    if r.type == "AWS::Lambda::Version":
        return f"{function_arn(t, _function_of(t, name, line))}:1"
    if r.type == "AWS::Lambda::Alias":
        return f"{function_arn(t, _function_of(t, name, line))}:{_prop(t, name, 'Name')}"
    if r.type == "AWS::Lambda::Url":
        return function_arn(t, _function_of(t, name, line))
    return name  # an API's id is its logical id here; anything else's too


def attribute(t: Template, name: str, attr: str, line: int | None) -> Any:
    if (name, attr) in t.known:
        return t.known[(name, attr)]
    if name in IMPLICIT_APIS and name not in t.resources:
        return {"RootResourceId": "root", "ApiEndpoint": t.endpoint}.get(attr, name)
    if name not in t.resources:
        raise IntrinsicError(f"Template error: instance of Fn::GetAtt references undefined resource {name}", line)
    r = t.resources[name]
    got: Any = None
    if r.type in FUNCTIONS and attr == "Arn":
        got = function_arn(t, physical_name(t, name))
    elif r.type == "AWS::SQS::Queue":
        got = {"Arn": f"arn:aws:sqs:{t.region}:{t.account}:{physical_name(t, name)}",
               "QueueName": physical_name(t, name), "QueueUrl": ref(t, name, line)}.get(attr)
    elif r.type == "AWS::Kinesis::Stream" and attr == "Arn":
        got = f"arn:aws:kinesis:{t.region}:{t.account}:stream/{physical_name(t, name)}"
    elif r.type == "AWS::Lambda::Version":
        got = {"Version": "1", "FunctionArn": function_arn(t, _function_of(t, name, line))}.get(attr)
    elif r.type == "AWS::Lambda::Alias" and attr == "AliasArn":
        got = ref(t, name, line)
    elif r.type == "AWS::Lambda::Url":
        got = {"FunctionArn": function_arn(t, _function_of(t, name, line)), "FunctionUrl": ""}.get(attr)
    elif r.type in APIS:
        got = {"RootResourceId": "root", "ApiEndpoint": ""}.get(attr)
    elif r.type in LAYERS and attr == "Arn":
        got = ref(t, name, line)
    elif attr == "Arn":
        service = r.type.split("::")[1].lower() if r.type.count("::") >= 2 else "unknown"
        got = f"arn:aws:{service}:{t.region}:{t.account}:{name}"
    elif r.type not in FUNCTIONS and r.type != "AWS::Kinesis::Stream":
        got = name  # an unsupported resource's other attributes: listed at start, not resolved here
    if got is None:
        raise IntrinsicError(f"Template error: resource {name} does not support attribute type {attr} in "
                             "Fn::GetAtt", line)
    return got
