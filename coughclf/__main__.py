from coughclf.cli import main

raise SystemExit(main())
