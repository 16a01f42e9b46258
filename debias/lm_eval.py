"""``python -m debias.lm_eval ARGS``: lm-eval's own command line with the project's scorer registered.

lm-eval finds model classes by name in its registry, and it loads no plug-ins; importing
``debias.scorer`` registers ``gee-hf``, so ``--model gee-hf --model_args pretrained=PATH`` works exactly
like ``--model hf`` (every other flag is lm-eval's).
"""

from __future__ import annotations


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    import debias.scorer  # noqa: F401  (registers the gee-hf model)

    cli_evaluate()


if __name__ == "__main__":
    main()
