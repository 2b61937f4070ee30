from figurine.cli import main

raise SystemExit(main())
