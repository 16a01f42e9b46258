"""gee_winogender: Winogender gender-occupation bias at the pronoun, as an lm-eval task."""


def occupation_statistics() -> dict[str, dict]:
    """{occupation: {bls_pct_female, bls_year, bergsma_pct_female}}, sha256-checked.

    The benchmark's public data API: training code (PCGU's occupation pairs) reads the statistics
    through it rather than through the task's internals.
    """
    from harness_tasks import _data
    from harness_tasks.winogender.utils import STATS_FILE, read_stats

    return read_stats(_data.data_file(STATS_FILE))
