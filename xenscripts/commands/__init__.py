"""One module per entry point, each with ``run(argv, env, stderr) -> exit status``."""
