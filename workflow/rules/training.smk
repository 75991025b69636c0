rule imagenet_model:
    output:
        f"{DATA}/models/imagenet_{{network}}/model.pt",
    wildcard_constraints:
        network=one_of(config["networks"]),
    params:
        tracked=lambda wildcards: params_of("dataset", "seed", *network_params(wildcards.network),
                                            f"{PRESET}.embedding_dim", f"{PRESET}.imagenet_backbones"),
    log:
        f"{DATA}/logs/imagenet_model/{{network}}.log",
    shell:
        "python stages/imagenet_model.py --network {wildcards.network} --out {output} --log {log}"


rule train_unsupervised:
    input:
        init=init_model("unsupervised_runs"),
        dataset=f"{DATA}/dataset",
        segments=f"{DATA}/pseudo_segments",
    output:
        model=f"{DATA}/models/{{run}}/model.pt",
        train_log=f"{REPORTS}/training/{{run}}.csv",
        tensorboard=directory(f"{DATA}/logs/tensorboard/{{run}}"),
    wildcard_constraints:
        run=one_of(config["unsupervised_runs"]),
    params:
        tracked=run_params("unsupervised_runs"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/train_unsupervised/{{run}}.log",
    shell:
        config["train_launcher"] + " stages/train.py -- --run {wildcards.run} --init {input.init}"
        " --dataset-root {input.dataset} --segments {input.segments} --model-out {output.model}"
        " --train-log {output.train_log} --tensorboard {output.tensorboard} --log {log}"


rule train_supervised:
    input:
        init=init_model("supervised_runs"),
        dataset=f"{DATA}/dataset",
    output:
        model=f"{DATA}/models/{{run}}/model.pt",
        train_log=f"{REPORTS}/training/{{run}}.csv",
        tensorboard=directory(f"{DATA}/logs/tensorboard/{{run}}"),
    wildcard_constraints:
        run=one_of(config["supervised_runs"]),
    params:
        tracked=run_params("supervised_runs"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/train_supervised/{{run}}.log",
    shell:
        config["train_launcher"] + " stages/train.py -- --run {wildcards.run} --init {input.init}"
        " --dataset-root {input.dataset} --model-out {output.model}"
        " --train-log {output.train_log} --tensorboard {output.tensorboard} --log {log}"


rule train_softmax:
    input:
        init=init_model("softmax_runs"),
        dataset=f"{DATA}/dataset",
    output:
        model=f"{DATA}/models/{{run}}/model.pt",
        train_log=f"{REPORTS}/training/{{run}}.csv",
        tensorboard=directory(f"{DATA}/logs/tensorboard/{{run}}"),
    wildcard_constraints:
        run=one_of(config["softmax_runs"]),
    params:
        tracked=run_params("softmax_runs"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/train_softmax/{{run}}.log",
    shell:
        config["train_launcher"] + " stages/train.py -- --run {wildcards.run} --init {input.init}"
        " --dataset-root {input.dataset} --model-out {output.model}"
        " --train-log {output.train_log} --tensorboard {output.tensorboard} --log {log}"
