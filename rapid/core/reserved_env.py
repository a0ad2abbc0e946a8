"""The limits Lambda puts on a function's own environment variables.

A module of its own, with no imports, because ``rapid.config`` checks them at start-up
before the daemon imports the rest of ``rapid.core`` (``rapid.core.rules`` checks them for
the control plane).
"""

MAX_ENV_BYTES = 4096  # Lambda: 4 KB of environment variables in all

# AWS's reserved variables: a function may not set them (AWS refuses such a configuration).
RESERVED_ENV = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})
