"""The run's plumbing, free of machine learning: usable from every layer of the package above ``layers``.

- :mod:`~seunet_monai.runtime.resources`: where the bundle shipped with the package lives;
- :mod:`~seunet_monai.runtime.paths`: the bundle folder of the config being parsed, paths relative to it;
- :mod:`~seunet_monai.runtime.checks`: pre-run checks of arguments and outputs;
- :mod:`~seunet_monai.runtime.files`: atomic writes, output folders, a file's SHA-256;
- :mod:`~seunet_monai.runtime.status`: the status files of a run;
- :mod:`~seunet_monai.runtime.distributed`: rank and barrier;
- :mod:`~seunet_monai.runtime.run_lock`: exclusive use of a run's folders;
- :mod:`~seunet_monai.runtime.progress`: console progress bars, epoch lines, durations and megapixels in log lines;
- :mod:`~seunet_monai.runtime.version`: the package version and git revision that made an output;
- :mod:`~seunet_monai.runtime.excepthook`: importing it installs the one-line error hook.
"""
