"""Policy checks over everything the chart renders; each failure names the offending object."""

from __future__ import annotations

import copy


def rendered_pods(chart, objs):
    for obj in objs:
        found = chart.pod_template(obj)
        if found:
            spec, labels = found
            yield chart.obj_id(obj), obj["metadata"].get("namespace", chart.NAMESPACE), spec, labels


def test_containers_follow_the_rules(chart, config):
    problems = []
    for who, _ns, spec, _labels in rendered_pods(chart, chart.render(config)):
        problems += chart.pod_problems(who, spec)
    assert not problems, "\n".join(problems)


def test_network_policies_cover_every_pod(chart, config):
    objs = chart.render(config)
    pods = [(who, ns, labels) for who, ns, _spec, labels in rendered_pods(chart, objs)]
    assert len(pods) >= 6
    problems = chart.netpol_problems(objs, pods)
    assert not problems, "\n".join(problems)


def test_no_hostpath_and_no_cluster_admin(chart, config):
    for obj in chart.render(config):
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert obj["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), chart.obj_id(
                obj
            )
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], chart.obj_id(obj)


def test_checks_name_the_offending_object(chart):
    """The checks above can fail: a spoiled copy of the hub Deployment is caught, by name."""
    objs = chart.render("default")
    hub = copy.deepcopy(chart.find(objs, "Deployment", "rp-hub"))
    hub["metadata"]["name"] = "spoiled-hub"
    spec = hub["spec"]["template"]["spec"]
    ct = spec["containers"][0]
    ct["image"] = "roman-platform/hub:latest"
    del ct["resources"]["limits"]["memory"]
    ct["securityContext"]["runAsNonRoot"] = False
    ct["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = chart.pod_problems("Deployment/roman/spoiled-hub", spec)
    text = "\n".join(problems)
    for expected in (
        "latest",
        "no memory limit",
        "may run as root",
        "does not drop ALL",
        "adds capabilities",
        "hostPath",
    ):
        assert expected in text, (expected, text)
    assert all(p.startswith("Deployment/roman/spoiled-hub") for p in problems)
    hub["spec"]["template"]["metadata"]["labels"] = {"app.kubernetes.io/component": "stray"}
    uncovered = chart.netpol_problems(objs, [("Deployment/roman/spoiled-hub", "roman", {"x": "y"})])
    # (without the release's labels the default deny does not select it either: issue 16 item 7)
    assert uncovered == [
        "Deployment/roman/spoiled-hub: no default-deny NetworkPolicy in namespace roman",
        "Deployment/roman/spoiled-hub: no NetworkPolicy selects its pods (labels {'x': 'y'})",
    ]


def test_images_are_pinned_in_the_policy_too(chart, config):
    """The bundled policy says roman-notebook:latest; the chart pins it to the singleuser image."""
    import yaml

    objs = chart.render(config)
    policy = yaml.safe_load(chart.find(objs, "ConfigMap", "rp-hub")["data"]["policy.yaml"])
    assert chart.image_problem(policy["images"]["default"]) is None
    for name, profile in policy["profiles"].items():
        if profile.get("image"):
            assert chart.image_problem(profile["image"]) is None, name
