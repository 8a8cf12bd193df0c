from tfseg.cli import main

raise SystemExit(main())
