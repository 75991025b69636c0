rule dataset:
    output:
        directory(f"{DATA}/dataset"),
    params:
        values=params_of("dataset", "seed", "tiny"),
    shell:
        "python stages/make_dataset.py --out {output}"
