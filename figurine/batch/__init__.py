"""figurine batch: a whole team's figures, one manifest row per figure, on every GPU of a machine
or of the user's own Ray cluster.

    figurine batch team.csv -o out/                 # local Ray: one worker per GPU
    figurine batch team.csv -o out/ --dry-run       # the plan: what would be made, what is done
    figurine batch team.csv -o out/ --address 10.0.0.5:6379     # join your own Ray cluster

    from figurine.batch.manifest import read_manifest, check_rows
    from figurine.batch.plan import make_plan
    good, bad = check_rows(read_manifest("team.csv"), Path("."), files=["configs/tiny.toml"])
    plan = make_plan(good, Path("out"), pdf=False)

The modules, in the order a batch uses them:
  manifest.py   read CSV / JSON Lines rows and check each one before any model loads
  plan.py       each row's folder, digest and row.json: done already, or to be made (again)
  runner.py     Ray: privacy settings, one worker actor per GPU, rows as tasks, retries, Ctrl-C
  worker.py     the actor: a loaded FigurinePipeline, prepare and finish of two rows overlapped
  summary.py    the progress bar, OUTDIR/batch.csv and batch.json
The command itself is figurine/commands/batch.py; the README's "Batches" section has the
settings and a two-machine example.
"""
