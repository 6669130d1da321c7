"""RD evaluation with real bitstreams: per-image CSV, summary JSON, Tables I/II, Fig. 6/7.

python evaluate.py --config configs/eval/paper.py --checkpoints runs/ --data kodak_dir --out DIR
  --checkpoints: params dirs / training workdirs, or folders of them (repeat or comma-separate).
  --data: a folder of images (Kodak), "bundled" (validation photos) or "coco_val"
    (the coco_sam_edges dataset in --config.data.dir).
  --config.a.b=VALUE overrides a field of the eval config, as in train.py.
"""

import sys

from absl import app, flags, logging

from icmh_jax import compilation_cache, config_files, malloc_options

_CONFIG = flags.DEFINE_string("config", "configs/eval/paper.py", "eval config file[:knobs]")
_CHECKPOINTS = flags.DEFINE_list("checkpoints", None, "checkpoint paths or folders of them",
                                 required=True)
_DATA = flags.DEFINE_string("data", "bundled", "image folder, 'bundled' or 'coco_val'")
_OUT = flags.DEFINE_string("out", "eval_out", "output folder")


def main(args):
  argv, overrides = args
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax/TFDS info lines would bury the progress bar
  compilation_cache.enable()
  from icmh_jax.errors import IcmhError
  from icmh_jax.evaluation import rd
  try:
    config = config_files.load(_CONFIG.value, overrides)
    summary = rd.run_from_config(config, _CHECKPOINTS.value, _DATA.value, _OUT.value)
  except IcmhError as e:
    print(f"evaluate: error: {e}", file=sys.stderr)
    return 1
  print(open(summary["files"]["tables"]).read())
  print(f"wrote {', '.join(summary['files'].values())}")
  return 0


if __name__ == "__main__":
  malloc_options.reexec()
  app.run(main, flags_parser=config_files.parse_flags)
