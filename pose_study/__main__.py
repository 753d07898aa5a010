from pose_study.cli import main

raise SystemExit(main())
