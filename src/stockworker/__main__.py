from stockworker.entrypoints.cli import main

raise SystemExit(main())
