"""Reports: compile summaries, verification, costs."""

FORMATS = ("md", "json", "html")     # what `neurodeploy report --format` writes (`build.render`)
