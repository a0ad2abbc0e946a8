"""Loading templates (rapid.template.loader, intrinsics, plan.check): what a template
resolves to, and bad templates refused with the file, the line and the resource."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from rapid.template import TemplateError, load_template
from rapid.template.plan import check, function_plan, unsupported


def write(tmp_path: Path, text: str, name: str = "template.yaml", code: bool = True) -> str:
    if code:
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / "app.py").write_text("def handler(e, c):\n    return e\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


FULL = """
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Memory:
    Type: Number
    Default: 256
    MinValue: 128
  Names:
    Type: CommaDelimitedList
    Default: "a, b,c"
Mappings:
  Sizes:
    dev: {Timeout: 5}
    prod: {Timeout: 30}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition NotProd, !Equals [a, a]]
Globals:
  Function:
    Runtime: python3.12
    Layers: [arn:aws:lambda:us-east-1:000000000000:layer:g:1]
    Environment:
      Variables:
        FROM_GLOBALS: "yes"
        OVERRIDDEN: globals
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-fn-${Stage}"
      CodeUri: src/
      Handler: app.handler
      MemorySize: !Ref Memory
      Timeout: !FindInMap [Sizes, !Ref Stage, Timeout]
      Layers: [!Ref Layer]
      Environment:
        Variables:
          OVERRIDDEN: resource
          QUEUE_ARN: !GetAtt Queue.Arn
          QUEUE_URL: !Ref Queue
          QUEUE_NAME: !GetAtt [Queue, QueueName]
          JOINED: !Join ["-", [!Ref Stage, !Select [1, !Ref Names], !Select [0, !Split [",", "x,y"]]]]
          LITERAL: !Sub "${!NotReplaced} ${AWS::Region} ${AWS::AccountId}"
          VARS: !Sub ["${A}+${Queue.Arn}", {A: !Ref Stage}]
          PICK: !If [IsProd, big, small]
          BOTH: !If [Both, "1", "0"]
          GONE: !If [IsProd, here, !Ref AWS::NoValue]
          STREAM: !GetAtt Stream.Arn
          B64: !Base64 hi
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Stage}-queue"
  Stream:
    Type: AWS::Kinesis::Stream
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      LayerName: deps
      ContentUri: src/
  ProdOnly:
    Type: AWS::SQS::Queue
    Condition: IsProd
Outputs:
  Arn:
    Value: !GetAtt Fn.Arn
"""


def test_everything_resolves(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, FULL), endpoint="http://127.0.0.1:9999")
    assert sorted(t.resources) == ["Fn", "Layer", "Queue", "Stream"]  # ProdOnly's condition is false
    p = t.resources["Fn"].properties
    stack = tmp_path.name.replace("_", "-")  # a stack name is letters, digits and dashes
    assert p["FunctionName"] == f"{stack}-fn-dev"
    assert p["MemorySize"] == "256" and p["Timeout"] == 5 and p["Runtime"] == "python3.12"
    # Globals: lists append, maps merge with the resource's keys winning
    assert p["Layers"] == ["arn:aws:lambda:us-east-1:000000000000:layer:g:1",
                           "arn:aws:lambda:us-east-1:000000000000:layer:deps:1"]
    env = p["Environment"]["Variables"]
    assert env["FROM_GLOBALS"] == "yes" and env["OVERRIDDEN"] == "resource"
    assert env["QUEUE_ARN"] == "arn:aws:sqs:us-east-1:000000000000:dev-queue"
    assert env["QUEUE_URL"] == "http://127.0.0.1:9999/000000000000/dev-queue"
    assert env["QUEUE_NAME"] == "dev-queue"
    assert env["JOINED"] == "dev-b-x"
    assert env["LITERAL"] == "${NotReplaced} us-east-1 000000000000"
    assert env["VARS"] == "dev+arn:aws:sqs:us-east-1:000000000000:dev-queue"
    assert env["PICK"] == "small" and env["BOTH"] == "1"
    assert "GONE" not in env
    assert env["STREAM"] == "arn:aws:kinesis:us-east-1:000000000000:stream/Stream"
    assert env["B64"] == "aGk="
    assert t.outputs["Arn"]["Value"] == f"arn:aws:lambda:us-east-1:000000000000:function:{stack}-fn-dev"


def test_overrides_and_conditions(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, FULL), {"Stage": "prod", "Memory": "512"})
    assert "ProdOnly" in t.resources
    env = t.resources["Fn"].properties["Environment"]["Variables"]
    assert env["PICK"] == "big" and env["GONE"] == "here" and env["BOTH"] == "0"
    assert t.resources["Fn"].properties["Timeout"] == 30


def test_known_values_replace_the_guess(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, FULL))
    t.known[("Layer", "Ref")] = "arn:aws:lambda:us-east-1:000000000000:layer:deps:7"
    assert t.properties("Fn")["Layers"][-1].endswith(":deps:7")


def test_json_templates(tmp_path: Path) -> None:
    doc = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
        "Runtime": "python3.12", "Handler": "app.handler", "Role": "arn:aws:iam::000000000000:role/x",
        "Code": {"ZipFile": "def handler(e, c):\n    return 1\n"},
        "Environment": {"Variables": {"ARN": {"Fn::Sub": "${Q.Arn}"}}}}},
        "Q": {"Type": "AWS::SQS::Queue"}}}
    t = load_template(write(tmp_path, json.dumps(doc, indent="\t"), "template.json"))
    assert t.resources["Fn"].properties["Environment"]["Variables"]["ARN"].endswith(":Q")
    plan = function_plan(t, t.resources["Fn"])
    assert plan.inline is not None and plan.body["Role"] == "arn:aws:iam::000000000000:role/x"


def test_sam_references_to_alias_and_version(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.12, AutoPublishAlias: live}
          Other:
            Type: AWS::SQS::Queue
            Properties:
              Tags:
                - {Key: alias, Value: !Ref Fn.Alias}
    """))
    assert t.resources["Other"].properties["Tags"][0]["Value"] == \
        "arn:aws:lambda:us-east-1:000000000000:function:Fn:live"


def test_alarms_are_kept_resolved(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.12}
          Errors:
            Type: AWS::CloudWatch::Alarm
            Properties:
              MetricName: Errors
              Namespace: AWS/Lambda
              Dimensions: [{Name: FunctionName, Value: !Ref Fn}]
              Threshold: 1
    """))
    assert t.alarms == {"Errors": {"MetricName": "Errors", "Namespace": "AWS/Lambda", "Threshold": 1,
                                   "Dimensions": [{"Name": "FunctionName", "Value": "Fn"}]}}
    missing, no_effect = unsupported(t, check(t))
    assert missing == [] and no_effect == ["Errors (AWS::CloudWatch::Alarm)"]


def test_unsupported_types_and_events_are_listed(tmp_path: Path) -> None:
    t = load_template(write(tmp_path, """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.12
              Events:
                Upload:
                  Type: S3
                  Properties: {Bucket: !Ref Bucket, Events: s3:ObjectCreated:*}
          Bucket:
            Type: AWS::S3::Bucket
    """))
    missing, _ = unsupported(t, check(t))
    assert missing == ["Bucket (AWS::S3::Bucket, line 12)", "Fn event Upload (type S3, line 9)"]


# -- refusals, each with its line ----------------------------------------------------------

BAD = [
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: nowhere/
           Handler: app.handler
           Runtime: python3.12
     """, 5, "Fn", "CodeUri 'nowhere/': no such folder or .zip"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python2.1
     """, 7, "Fn", "Value python2.1 at 'runtime' failed to satisfy constraint"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Runtime: python3.12
     """, 5, "Fn", "Handler is required"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           Environment:
             Variables:
               X: !GetAtt Missing.Arn
     """, 10, "Fn", "references undefined resource Missing"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           Environment:
             Variables:
               X: !Ref Nothing
     """, 10, "Fn", "Unresolved resource dependencies [Nothing]"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           Description: !Select [5, [a, b]]
     """, 8, "Fn", "Fn::Select: index 5 is out of bounds"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           Description: !ImportValue other-stack-output
     """, 8, "Fn", "Fn::ImportValue is not supported"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           MemorySize: 64
     """, 8, "Fn", "MemorySize 64 is outside 128-10240"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           Events:
             Tick:
               Type: Schedule
               Properties: {Schedule: rate(1 minutes)}
     """, 9, "Fn", "event Tick: Parameter ScheduleExpression is not valid"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Properties:
           CodeUri: src/
           Handler: app.handler
           Runtime: python3.12
           Events:
             Api:
               Type: Api
               Properties: {Path: /x}
     """, 9, "Fn", "an Api event needs Path and Method"),
    ("""
     Resources:
       Layer:
         Type: AWS::Serverless::LayerVersion
         Properties:
           ContentUri: no-layer/
     """, 5, "Layer", "ContentUri 'no-layer/': no such folder or .zip"),
    ("""
     Resources:
       Fn:
         Type: AWS::Serverless::Function
         Condition: Missing
         Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.12}
     """, 4, "Fn", "Unresolved condition dependency Missing"),
    ("""
     Resources:
       bad-name:
         Type: AWS::SQS::Queue
     """, 2, "bad-name", "non alphanumeric"),
]


@pytest.mark.parametrize("text, line, resource, message", BAD)
def test_bad_templates_name_the_resource_and_line(tmp_path: Path, text: str, line: int, resource: str,
                                                   message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TemplateError) as info:
        check(load_template(path))
    err = info.value
    assert (err.line, err.resource) == (line, resource), str(err)
    assert message in err.message
    assert str(err).startswith(f"{path}:{line}: resource {resource}: ")


@pytest.mark.parametrize("text, line, message", [
    ("Resources:\n  Fn: [unclosed\n", 3, "not valid YAML"),
    ("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n  Q:\n    Type: AWS::SQS::Queue\n", 4, "duplicate key 'Q'"),
    ("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: !Bogus x\n", 4, "unknown tag '!Bogus'"),
    ("Description: nothing\n", 1, "At least one Resources member must be defined"),
    ("Parameters:\n  P: {Type: String}\nResources:\n  Q: {Type: AWS::SQS::Queue}\n", 1,
     "Parameters: [P] must have values"),
])
def test_bad_documents(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        load_template(write(tmp_path, text, code=False))
    assert message in info.value.message
    assert (info.value.line or 0) == line


def test_parameter_checks(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    for overrides, message in (({"Stage": "qa"}, "Parameter 'Stage' must be one of AllowedValues"),
                               ({"Memory": "64"}, "must be a number greater than or equal to 128"),
                               ({"Memory": "lots"}, "must be a number not lots"),
                               ({"Nope": "1"}, "Parameters: [Nope] do not exist in the template")):
        with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_template(path, overrides)


def test_routes_and_schedules_from_events(tmp_path: Path) -> None:
    from rapid.template.functions import FunctionApplier

    t = load_template(write(tmp_path, """
        Transform: AWS::Serverless-2016-10-31
        Resources:
          MyApi:
            Type: AWS::Serverless::Api
            Properties: {StageName: v1}
          MyHttp:
            Type: AWS::Serverless::HttpApi
            Properties: {PayloadFormatVersion: "1.0"}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Runtime: python3.12
              AutoPublishAlias: live
              Events:
                Rest: {Type: Api, Properties: {RestApiId: !Ref MyApi, Path: /r, Method: post}}
                Http: {Type: HttpApi, Properties: {ApiId: !Ref MyHttp, Path: /h, Method: get}}
                Default: {Type: HttpApi}
                Tick: {Type: Schedule, Properties: {Schedule: "cron(0 9 ? * MON *)", Name: weekly}}
                Later: {Type: ScheduleV2, Properties: {ScheduleExpression: "at(2030-01-01T00:00:00)",
                                                       ScheduleExpressionTimezone: Europe/Paris}}
                Off: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 day), State: DISABLED}}
    """))
    plans = check(t)
    applier = FunctionApplier(None, None, print)  # type: ignore[arg-type]
    routes = {(r.method, r.path): r for r in applier.routes(t, plans)}
    rest, http, default = routes[("POST", "/r")], routes[("GET", "/h")], routes[("ANY", "$default")]
    assert (rest.api, rest.stage, rest.payload, rest.rest, rest.qualifier) == ("MyApi", "v1", "1.0", True, "live")
    assert (http.api, http.payload, http.rest) == ("MyHttp", "1.0", False)
    assert (default.api, default.payload, default.stage) == ("ServerlessHttpApi", "2.0", "$default")
    jobs = {j.rule: j for j in applier.schedules(t, plans)}
    assert set(jobs) == {"weekly", f"{t.stack_name}-FnLater"}
    assert jobs["weekly"].expression == "cron(0 9 ? * MON *)" and jobs["weekly"].qualifier == "live"
    later = jobs[f"{t.stack_name}-FnLater"]
    assert later.scheduler and later.timezone == "Europe/Paris"


def test_only_alarms_no_deployment_watches_are_said_to_be_without_effect(tmp_path: Path) -> None:
    from rapid.template.plan import check, unsupported

    t = load_template(write(tmp_path, """
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      AutoPublishAlias: live
      DeploymentPreference:
        Type: Canary10Percent5Minutes
        Alarms: [!Ref Watched]
  Watched:
    Type: AWS::CloudWatch::Alarm
    Properties: {MetricName: Errors, Namespace: AWS/Lambda, Threshold: 1, ComparisonOperator: GreaterThanThreshold,
                 EvaluationPeriods: 1, Period: 60, Statistic: Sum}
  Lonely:
    Type: AWS::CloudWatch::Alarm
    Properties: {MetricName: Errors, Namespace: AWS/Lambda, Threshold: 1, ComparisonOperator: GreaterThanThreshold,
                 EvaluationPeriods: 1, Period: 60, Statistic: Sum}
"""))
    missing, no_effect = unsupported(t, check(t))
    assert missing == []
    assert no_effect == ["Lonely (AWS::CloudWatch::Alarm)"]


def test_deployment_hooks_are_pointed_at_rapids_codedeploy(tmp_path: Path) -> None:
    from rapid.template.plan import check

    t = load_template(write(tmp_path, """
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      AutoPublishAlias: live
      DeploymentPreference:
        Type: AllAtOnce
        Hooks: {PreTraffic: !Ref Before, PostTraffic: !Ref After}
  Before:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: src/, Handler: app.handler, Runtime: python3.12}
  After:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      Environment: {Variables: {AWS_ENDPOINT_URL_CODEDEPLOY: "http://elsewhere:1", KEEP: "1"}}
"""), endpoint="http://127.0.0.1:9999")
    env = {p.resource: (p.body.get("Environment") or {}).get("Variables") for p in check(t)}
    assert env["Fn"] is None
    assert env["Before"] == {"AWS_ENDPOINT_URL_CODEDEPLOY": "http://127.0.0.1:9999"}
    assert env["After"] == {"AWS_ENDPOINT_URL_CODEDEPLOY": "http://elsewhere:1", "KEEP": "1"}
