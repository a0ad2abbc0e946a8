"""A small HTTP/1.1 server on httptools (llhttp), shared by the Runtime and Invoke APIs.

Why not aiohttp: its server leaks chunked-request trailers into the next request on the same
connection (see shared/reference/runtime-clients.md §6), and the Go runtime client sends
every POST chunked with trailers. llhttp reports trailer fields after the headers are
complete; this protocol keeps them apart, on the request they belong to.
"""
