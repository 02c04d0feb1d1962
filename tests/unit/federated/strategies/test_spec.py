from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.federated.strategies import (
    STRATEGIES,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    Median,
    Strategy,
    TrimmedMean,
    from_spec,
    spec_of,
)

from .rounds import property_test

positive = st.floats(min_value=1e-12, max_value=1e6, allow_subnormal=False)
fraction = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)

valid_strategies: st.SearchStrategy[Strategy] = st.one_of(
    st.builds(FedAvg, server_lr=positive),
    st.builds(FedAvgM, momentum=fraction, server_lr=positive),
    st.builds(FedAdam, eta=positive, beta1=fraction, beta2=fraction, tau=positive),
    st.builds(FedProx, mu=st.floats(min_value=0.0, max_value=1e6), server_lr=positive),
    st.builds(
        TrimmedMean,
        beta=st.floats(min_value=0.0, max_value=0.5, exclude_max=True),
        server_lr=positive,
    ),
    st.builds(Median, server_lr=positive),
)


@property_test
@given(valid_strategies)
def test_from_spec_rebuilds_the_strategy_spec_of_describes(strategy: Strategy) -> None:
    text = spec_of(strategy)
    rebuilt = from_spec(text)
    assert type(rebuilt) is type(strategy)
    assert rebuilt.hyperparameters() == strategy.hyperparameters()
    assert spec_of(rebuilt) == text


@pytest.mark.parametrize(
    ("text", "cls", "expected"),
    [
        ("fedavg", FedAvg, {"server_lr": 1.0}),
        ("fedavgm:momentum=0.9,server_lr=1", FedAvgM, {"momentum": 0.9, "server_lr": 1.0}),
        (
            "fedadam:eta=0.01,beta1=0.9,beta2=0.99,tau=1e-3",
            FedAdam,
            {"eta": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 0.001},
        ),
        ("fedprox:mu=0.01", FedProx, {"mu": 0.01, "server_lr": 1.0}),
        ("trimmed_mean:beta=0.2", TrimmedMean, {"beta": 0.2, "server_lr": 1.0}),
        ("median", Median, {"server_lr": 1.0}),
        ("  fedavgm : momentum = 0.5 ", FedAvgM, {"momentum": 0.5, "server_lr": 1.0}),
        ("fedadam:tau=1e-6", FedAdam, {"eta": 0.01, "beta1": 0.9, "beta2": 0.99, "tau": 1e-6}),
    ],
)
def test_from_spec_reads_cli_specs_with_defaults_for_what_is_left_out(
    text: str, cls: type[Strategy], expected: dict[str, float]
) -> None:
    strategy = from_spec(text)
    assert type(strategy) is cls
    assert strategy.hyperparameters() == expected


def test_spec_of_writes_every_hyperparameter_in_canonical_order() -> None:
    assert spec_of(from_spec("fedadam:tau=1e-3,eta=0.1")) == (
        "fedadam:eta=0.1,beta1=0.9,beta2=0.99,tau=0.001"
    )
    assert spec_of(FedProx()) == "fedprox:mu=0.01,server_lr=1.0"


def test_every_registered_strategy_has_a_distinct_spec_name() -> None:
    assert sorted(STRATEGIES) == [
        "fedadam",
        "fedavg",
        "fedavgm",
        "fedprox",
        "median",
        "trimmed_mean",
    ]
    assert all(cls.name == name for name, cls in STRATEGIES.items())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fedfoo", "unknown strategy 'fedfoo' (known: fedadam, fedavg, fedavgm, fedprox, median"),
        ("", "no strategy name"),
        (":mu=1", "no strategy name"),
        ("fedavg:", "nothing after ':' (parameters of fedavg: server_lr)"),
        ("fedavgm:momentum", "'momentum' is not name=value"),
        ("fedavgm:=0.9", "'=0.9' is not name=value"),
        ("fedavgm:momentum=0.9,", "empty parameter (a stray ',')"),
        (
            "fedavgm:speed=2",
            "unknown parameter 'speed' for fedavgm (it takes: momentum, server_lr)",
        ),
        ("median:beta=0.2", "unknown parameter 'beta' for median (it takes: server_lr)"),
        ("fedavgm:momentum=0.5,momentum=0.6", "parameter 'momentum' given twice"),
        ("fedadam:eta=fast", "eta='fast' is not a number"),
        ("fedavg:server_lr=", "server_lr='' is not a number"),
        ("fedadam:eta=nan", "eta='nan' is not a finite number"),
        ("fedadam:eta=1e999", "eta='1e999' is not a finite number"),
        ("fedavgm:momentum=1", "momentum must be in [0, 1.0), got 1.0"),
        ("fedadam:beta2=-0.1", "beta2 must be in [0, 1.0), got -0.1"),
        ("fedadam:tau=0", "tau must be > 0, got 0.0"),
        ("fedavg:server_lr=-1", "server_lr must be > 0, got -1.0"),
        ("fedprox:mu=-0.01", "mu must be >= 0.0, got -0.01"),
        ("trimmed_mean:beta=0.5", "beta must be in [0, 0.5), got 0.5"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_spec_and_its_bad_part(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"strategy spec {text!r}: {message}")):
        from_spec(text)


@property_test
@given(st.text(max_size=40))
def test_any_text_either_parses_or_is_refused_with_a_value_error(text: str) -> None:
    try:
        strategy = from_spec(text)
    except ValueError as exc:
        message = str(exc)
    else:
        assert spec_of(from_spec(spec_of(strategy))) == spec_of(strategy)
        return
    assert message.startswith(f"strategy spec {text!r}: ")


def test_spec_of_refuses_a_strategy_that_is_not_registered() -> None:
    class Custom(FedAvg):
        pass

    with pytest.raises(ValueError, match="Custom is not a registered strategy"):
        spec_of(Custom())


def test_the_federated_package_exports_the_strategy_api_under_unambiguous_names() -> None:
    import edgefleet.federated as federated

    assert federated.strategy_from_spec is from_spec
    assert federated.strategy_spec_of is spec_of
    assert federated.FedAdam is FedAdam
    for cls in STRATEGIES.values():
        assert getattr(federated, cls.__name__) is cls
