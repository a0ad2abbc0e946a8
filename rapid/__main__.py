from rapid.cli import main

raise SystemExit(main())
