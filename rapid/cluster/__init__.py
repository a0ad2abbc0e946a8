"""Several rapid nodes that behave as one Lambda service, on NATS JetStream.

Theory of operation
-------------------
``rapid serve --cluster nats://HOST:PORT`` keeps everything a node must share in
JetStream, and everything else local:

- the registry (functions, versions, aliases, layers, settings, URLs, event invoke configs) in the KV
  bucket ``rapid-registry`` (``rapid.registry.jetstream_store``): every write is a KV
  update conditioned on the revision this node last saw, so two nodes cannot both win a
  RevisionId precondition; every node watches the bucket and applies what the others
  wrote (``registry_sync``), so a change is served everywhere within a second;
- the deployment packages in the Object Store ``rapid-code`` by their SHA-256
  (``code_objects``): uploaded once by the node that received them, fetched and unpacked
  once by every other node, before the version that names them is installed there;
- the nodes themselves in the KV bucket ``rapid-nodes`` (``membership``): each node's
  status (address, instances, room) rewritten every second, gone when it stops;
- reserved concurrency as leases in the KV bucket ``rapid-leases`` (``leases``): one key
  per unit of concurrency, each instance of a reserved function holds one;
- sync invocations a node has no room for go to a node that has (``forwarding``, NATS
  request/reply), and streamed ones too, their bytes relayed as they are written
  (``stream_forwarding``, ``stream_frames``);
- async events and the records they leave for destinations in the streams ``RAPID_EVENTS``
  and ``RAPID_RECORDS`` (``rapid.events.jetstream_store``, ``jetstream_records``), taken
  over from dead nodes by ``adoption``; the built-in queues by one owner (``queue_owner``,
  journal ``queue_journal``); ``queue_view`` is ``rapid queue --cluster``;
- provisioned concurrency spread over the nodes, reported for the whole function on every
  node (``provisioned``);
- the autoscaler and the gradual deployments run by one node at a time under a KV lease
  (``control_owner``), their records followed by every node (``control_sync``).

``link`` holds the one NATS connection, on a thread of its own: the registry's store is
synchronous (as SQLite is), and waits there for JetStream's answer.
"""
