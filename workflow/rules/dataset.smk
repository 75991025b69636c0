rule dataset:
    output:
        directory(f"{DATA}/dataset"),
    params:
        tracked=params_of("dataset", "seed", "tiny"),
    shell:
        "python stages/make_dataset.py --out {output}"
