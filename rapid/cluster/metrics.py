"""The node's cluster series on its ``/metrics`` page (Prometheus text): peers seen, leases
held, invocations forwarded each way and refused cluster-wide, registry changes applied,
instances and in-flight invocations (what KEDA's Prometheus trigger scales on)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rapid.cluster.node import Node


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(node: Node) -> str:
    status = node.describe()
    node_label = f'node="{_label(node.id)}"'
    rows = [
        ("rapid_cluster_nodes", "gauge", "Nodes of the cluster alive, this one included.",
         1 + (len(node.membership.alive()) if node.membership else 0)),
        ("rapid_cluster_connected", "gauge", "1 while this node is connected to NATS.", int(node.link.connected)),
        ("rapid_cluster_reconnects_total", "counter", "Reconnections to NATS.", node.link.reconnects),
        ("rapid_cluster_instances", "gauge", "Instances running on this node.", status.instances),
        ("rapid_cluster_inflight", "gauge", "Invocations running on this node.", status.inflight),
        ("rapid_cluster_forwarded_out_total", "counter", "Sync invocations answered by another node.",
         status.forwarded_out),
        ("rapid_cluster_forwarded_in_total", "counter", "Sync invocations run here for another node.",
         status.forwarded_in),
        ("rapid_cluster_refused_total", "counter", "Sync invocations throttled for reserved concurrency "
         "cluster-wide.", node.placement.refused if node.placement else 0),
        ("rapid_cluster_registry_applied_total", "counter", "Registry changes of other nodes applied here.",
         node.sync.applied if node.sync else 0),
        ("rapid_cluster_events_held", "gauge", "Async events this node holds unacknowledged in JetStream.",
         len(node.event_store.held) if node.event_store else 0),
        ("rapid_cluster_events_published_total", "counter", "Async events this node put in JetStream.",
         node.event_store.published if node.event_store else 0),
        ("rapid_cluster_events_finished_total", "counter", "Async events this node finished (acknowledged and "
         "deleted from JetStream).", node.event_store.acked if node.event_store else 0),
        ("rapid_cluster_events_adopted_total", "counter", "Async events of dead nodes this node took over.",
         node.adoption.adopted if node.adoption else 0),
        ("rapid_cluster_events_redelivered_total", "counter", "Taken-over events the dead node had been handed "
         "(they may have run there: possible duplicates).", node.adoption.redelivered if node.adoption else 0),
        ("rapid_cluster_records_held", "gauge", "Records for built-in queues, files and HTTP destinations this "
         "node holds unacknowledged in JetStream.", len(node.event_store.records.held) if node.event_store else 0),
        ("rapid_cluster_records_published_total", "counter", "Records for destinations this node put in JetStream.",
         node.event_store.records.published if node.event_store else 0),
        ("rapid_cluster_records_delivered_total", "counter", "Records this node delivered (acknowledged and "
         "deleted from JetStream).", node.event_store.records.delivered if node.event_store else 0),
        ("rapid_cluster_records_adopted_total", "counter", "Records of dead nodes this node took over.",
         node.adoption.records if node.adoption else 0),
        ("rapid_cluster_control_owner", "gauge", "1 while this node runs the autoscaler and the gradual "
         "deployments.", int(node.control_owner.valid()) if node.control_owner else 0),
        ("rapid_cluster_control_takeovers_total", "counter", "Times this node took the autoscaler and the gradual "
         "deployments over.", node.control_owner.takeovers if node.control_owner else 0),
        ("rapid_cluster_autoscaler_rounds_total", "counter", "Autoscaling rounds this node ran (only the node "
         "holding the control lease runs them).",
         node.control_owner.autoscaler.rounds if node.control_owner else 0),
    ]
    out: list[str] = []
    for name, kind, help_, value in rows:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name}{{{node_label}}} {value}"]
    out += ["# HELP rapid_cluster_leases Reserved-concurrency leases this node holds.",
            "# TYPE rapid_cluster_leases gauge"]
    for name, load in sorted(status.functions.items()):
        out.append(f'rapid_cluster_leases{{{node_label},function="{_label(name)}"}} {load.leases}')
    return "\n".join(out) + "\n"
