# The hidden-class experiment (params.yaml hidden_class, segsort/hidden_class.py): `run` trained again with the
# dataset's hidden class void in every image, its bank built without the class, then grown as `segsort bank add`
# grows a bank, by the first N images that show the class; each bank scored on val, beside the run trained with
# the class.
HIDDEN = config["hidden_class"]
HIDDEN_RUN = config["supervised_runs"][HIDDEN["run"]]
HIDDEN_DIR = f"{DATA}/hidden_class"
HIDDEN_IMAGES = [str(n) for n in HIDDEN["images"]]
HIDDEN_KNN = [str(k) for k in HIDDEN["knn_k"]]
HIDDEN_METRICS = [*(f"{REPORTS}/hidden_class/{n}.json" for n in ["0", *HIDDEN_IMAGES]),
                  *(f"{REPORTS}/hidden_class/k{k}/{n}.json" for k in HIDDEN_KNN for n in ["0", *HIDDEN_IMAGES])]
# Part of `all` for a dataset whose classes include its hidden class (asking another for the table says why not).
HAS_HIDDEN_CLASS = HIDDEN["classes"].get(config["dataset"]) in class_names(config["dataset"], config["datasets"])


rule train_hidden_class:
    input:
        init=f"{DATA}/models/{HIDDEN_RUN['init']}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        model=f"{DATA}/models/hidden_class/model.pt",
        train_log=f"{REPORTS}/training/hidden_class.csv",
        tensorboard=directory(f"{DATA}/logs/tensorboard/hidden_class"),
    params:
        tracked=params_of(*run_keys("supervised_runs", HIDDEN["run"]), "hidden_class.run", "hidden_class.classes"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/train_hidden_class.log",
    shell:
        config["train_launcher"] + f" stages/train.py -- --run {HIDDEN['run']} --hide-class --init {{input.init}}"
        " --dataset-root {input.dataset} --model-out {output.model} --train-log {output.train_log}"
        " --tensorboard {output.tensorboard} --log {log}"


rule prototype_bank_hidden_class:
    input:
        model=rules.train_hidden_class.output.model,
        dataset=f"{DATA}/dataset",
    output:
        f"{HIDDEN_DIR}/banks/0.h5",
    params:
        tracked=params_of(*BANK_PARAMS, "hidden_class.classes"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/prototype_bank_hidden_class.log",
    shell:
        "python stages/build_bank.py --hide-class --model {input.model} --dataset-root {input.dataset} --out {output}"
        " --log {log}"


rule hidden_class_images:
    input:
        f"{DATA}/dataset",
    output:
        directory(f"{HIDDEN_DIR}/images/{{images}}"),
    wildcard_constraints:
        images=one_of(HIDDEN_IMAGES),
    params:
        tracked=params_of("evaluation.bank_split", "hidden_class.classes", "hidden_class.min_share"),
    log:
        f"{DATA}/logs/hidden_class_images/{{images}}.log",
    shell:
        "python stages/hidden_class_images.py --dataset-root {input} --images {wildcards.images} --out {output}"
        " --log {log}"


rule grow_bank_hidden_class:
    input:
        bank=rules.prototype_bank_hidden_class.output,
        model=rules.train_hidden_class.output.model,
        images=f"{HIDDEN_DIR}/images/{{images}}",
    output:
        f"{HIDDEN_DIR}/banks/{{images}}.h5",
    wildcard_constraints:
        images=one_of(HIDDEN_IMAGES),
    params:
        tracked=params_of("threads", f"{PRESET}.segsort", f"{PRESET}.inference.kmeans_iterations"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/grow_bank_hidden_class/{{images}}.log",
    shell:
        "python stages/grow_bank.py {input.images} --bank {input.bank} --model {input.model} --out {output} --log {log}"


rule metrics_hidden_class:
    input:
        model=rules.train_hidden_class.output.model,
        bank=f"{HIDDEN_DIR}/banks/{{images}}.h5",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/hidden_class/{{images}}.json",
    wildcard_constraints:
        images=one_of(["0", *HIDDEN_IMAGES]),
    params:
        tracked=params_of(*EVAL_PARAMS),
    threads: config["threads"]
    log:
        f"{DATA}/logs/metrics_hidden_class/{{images}}.log",
    shell:
        "python stages/evaluate.py --model {input.model} --bank {input.bank} --dataset-root {input.dataset}"
        " --out {output} --log {log}"


# The same banks, and the reference run's, scored with each k of hidden_class.knn_k instead of the preset's.
rule metrics_hidden_class_knn:
    input:
        model=rules.train_hidden_class.output.model,
        bank=f"{HIDDEN_DIR}/banks/{{images}}.h5",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/hidden_class/k{{k}}/{{images}}.json",
    wildcard_constraints:
        images=one_of(["0", *HIDDEN_IMAGES]),
        k=one_of(HIDDEN_KNN),
    params:
        tracked=params_of(*EVAL_PARAMS, "hidden_class.knn_k"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/metrics_hidden_class_knn/k{{k}}/{{images}}.log",
    shell:
        "python stages/evaluate.py --set inference.knn_k={wildcards.k} --model {input.model} --bank {input.bank}"
        " --dataset-root {input.dataset} --out {output} --log {log}"


rule metrics_hidden_class_reference_knn:
    input:
        model=f"{DATA}/models/{HIDDEN['run']}/model.pt",
        bank=f"{DATA}/banks/{HIDDEN['run']}.h5",
        dataset=f"{DATA}/dataset",
    output:
        f"{REPORTS}/hidden_class/k{{k}}/reference.json",
    wildcard_constraints:
        k=one_of(HIDDEN_KNN),
    params:
        tracked=params_of(*EVAL_PARAMS, "hidden_class.knn_k"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/metrics_hidden_class_reference_knn/k{{k}}.log",
    shell:
        "python stages/evaluate.py --set inference.knn_k={wildcards.k} --model {input.model} --bank {input.bank}"
        " --dataset-root {input.dataset} --out {output} --log {log}"


rule hidden_class_table:
    input:
        reference=[f"{REPORTS}/metrics/{HIDDEN['run']}.json",
                   *(f"{REPORTS}/hidden_class/k{k}/reference.json" for k in HIDDEN_KNN)],
        reference_bank=f"{DATA}/banks/{HIDDEN['run']}.h5",
        metrics=HIDDEN_METRICS,
        banks=[f"{HIDDEN_DIR}/banks/{n}.h5" for n in ["0", *HIDDEN_IMAGES]],
    output:
        table=f"{REPORTS}/hidden_class.csv",
        figure=f"{REPORTS}/figures/hidden_class.png",
    params:
        tracked=params_of("hidden_class"),
    log:
        f"{DATA}/logs/hidden_class_table.log",
    shell:
        "python stages/hidden_class_table.py --reference {input.reference} --reference-bank {input.reference_bank}"
        " --metrics {input.metrics} --banks {input.banks} --out {output.table} --figure {output.figure} --log {log}"
