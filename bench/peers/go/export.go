package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

const (
	templateAPIVersion = "example-backend.klutch.anynines.com/v1alpha1"
	exportAnnotation   = "bind.klutch.dev/export"
	claimsRoleKey      = "bind.klutch.dev/claims-role"
	rbacGroup          = "rbac.authorization.k8s.io"
	templateNamespace  = "crossplane-system"
	syncAccount        = "klutch-bind-sync"
)

type claim struct {
	group, resource, version string
	selector                 map[string]any
}

type exportRequest struct {
	name, xrd, version, templateNamespace string
	claims                                []claim
}

type xrdInfo struct {
	name, group, plural, kind string
	versions                  []xrdVersion
}

type xrdVersion struct {
	name                 string
	served, referenceable bool
}

func parseRequest(name string, spec map[string]any) (exportRequest, error) {
	if spec == nil {
		return exportRequest{}, errors.New("spec: must be an object")
	}
	r := exportRequest{name: name, templateNamespace: templateNamespace}
	var ok bool
	if r.xrd, ok = spec["xrd"].(string); !ok || r.xrd == "" {
		return r, errors.New("spec.xrd: must be a non-empty string")
	}
	if v, ok := spec["version"].(string); ok {
		r.version = v
	}
	if ns, ok := spec["templateNamespace"].(string); ok && ns != "" {
		r.templateNamespace = ns
	}
	raw, _ := spec["permissionClaims"].([]any)
	seen := map[string]bool{}
	for i, c := range raw {
		m, ok := c.(map[string]any)
		if !ok {
			return r, fmt.Errorf("spec.permissionClaims[%d]: must be an object", i)
		}
		group, okGroup := m["group"].(string)
		resource, okResource := m["resource"].(string)
		version, okVersion := m["version"].(string)
		selector, okSelector := m["selector"].(map[string]any)
		if !okGroup || !okResource || resource == "" || !okVersion || version == "" || !okSelector {
			return r, fmt.Errorf("spec.permissionClaims[%d]: needs group, resource, version and selector", i)
		}
		if owner := selector["owner"]; owner != "Provider" && owner != "Consumer" {
			return r, fmt.Errorf("spec.permissionClaims[%d].selector.owner: must be Provider or Consumer", i)
		}
		key := resource + "." + group
		if seen[key] {
			return r, fmt.Errorf("spec.permissionClaims[%d]: claims %s again", i, key)
		}
		seen[key] = true
		r.claims = append(r.claims, claim{group: group, resource: resource, version: version, selector: selector})
	}
	return r, nil
}

func parseXrd(obj map[string]any) (xrdInfo, error) {
	meta, _ := obj["metadata"].(map[string]any)
	spec, _ := obj["spec"].(map[string]any)
	names, _ := spec["names"].(map[string]any)
	x := xrdInfo{}
	x.name, _ = meta["name"].(string)
	x.group, _ = spec["group"].(string)
	x.plural, _ = names["plural"].(string)
	x.kind, _ = names["kind"].(string)
	if x.name == "" || x.group == "" || x.plural == "" || x.kind == "" {
		return x, errors.New("xrd: needs metadata.name, spec.group, spec.names.plural and spec.names.kind")
	}
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		served, _ := m["served"].(bool)
		referenceable, _ := m["referenceable"].(bool)
		x.versions = append(x.versions, xrdVersion{name: name, served: served, referenceable: referenceable})
	}
	return x, nil
}

func selectVersion(x xrdInfo, requested string) (string, error) {
	var served []string
	for _, v := range x.versions {
		if v.served {
			served = append(served, v.name)
		}
	}
	if requested != "" {
		for _, s := range served {
			if s == requested {
				return s, nil
			}
		}
		return "", fmt.Errorf("spec.version: %q is not served by XRD %s", requested, x.name)
	}
	for _, v := range x.versions {
		if v.served && v.referenceable {
			return v.name, nil
		}
	}
	if len(served) == 1 {
		return served[0], nil
	}
	return "", fmt.Errorf("spec.version: XRD %s has no served referenceable version", x.name)
}

func boundedName(name string) string {
	const limit = 253
	if len(name) <= limit {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	hash := hex.EncodeToString(sum[:])[:10]
	return strings.TrimRight(name[:limit-len(hash)-1], "-.:") + "-" + hash
}

func strs(s ...string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// buildExport returns the manifests by their key in desired.resources, as our function names them.
func buildExport(x xrdInfo, r exportRequest) (map[string]map[string]any, error) {
	version, err := selectVersion(x, r.version)
	if err != nil {
		return nil, err
	}
	roleName := boundedName("klutch-bind:export:" + r.name)
	claimsRole := boundedName("klutch-bind:export:" + r.name + ":claims")
	labels := func() map[string]any { return map[string]any{"app.kubernetes.io/managed-by": "function-klutch-bind"} }
	annotations := func() map[string]any { return map[string]any{exportAnnotation: r.name} }

	spec := map[string]any{"APIServiceSelector": map[string]any{"group": x.group, "resource": x.plural, "version": version}}
	templateAnnotations := annotations()
	if len(r.claims) > 0 {
		claims := make([]any, len(r.claims))
		for i, c := range r.claims {
			claims[i] = map[string]any{"group": c.group, "resource": c.resource, "version": c.version, "selector": c.selector}
		}
		spec["permissionClaims"] = claims
		templateAnnotations[claimsRoleKey] = claimsRole
	}
	out := map[string]map[string]any{
		"apiserviceexporttemplate": {
			"apiVersion": templateAPIVersion,
			"kind":       "APIServiceExportTemplate",
			"metadata": map[string]any{
				"name": r.name, "namespace": r.templateNamespace, "labels": labels(), "annotations": templateAnnotations,
			},
			"spec": spec,
		},
	}

	rules := []any{
		map[string]any{"apiGroups": strs(x.group), "resources": strs(x.plural),
			"verbs": strs("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")},
		map[string]any{"apiGroups": strs(x.group), "resources": strs(x.plural + "/status"), "verbs": strs("get", "update", "patch")},
	}
	if len(r.claims) > 0 {
		rules = append(rules, map[string]any{"apiGroups": strs(rbacGroup), "resources": strs("clusterroles"),
			"resourceNames": strs(claimsRole), "verbs": strs("bind")})
	}
	rules = append(rules, map[string]any{"apiGroups": strs("apiextensions.k8s.io"), "resources": strs("customresourcedefinitions"),
		"resourceNames": strs(x.plural + "." + x.group), "verbs": strs("get")})
	out["sync-clusterrole"] = map[string]any{
		"apiVersion": rbacGroup + "/v1", "kind": "ClusterRole",
		"metadata": map[string]any{"name": roleName, "labels": labels(), "annotations": annotations()},
		"rules":    rules,
	}
	out["sync-clusterrolebinding"] = map[string]any{
		"apiVersion": rbacGroup + "/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": roleName, "labels": labels(), "annotations": annotations()},
		"roleRef":  map[string]any{"apiGroup": rbacGroup, "kind": "ClusterRole", "name": roleName},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": syncAccount, "namespace": templateNamespace}},
	}
	if len(r.claims) > 0 {
		out["sync-claims-clusterrole"] = map[string]any{
			"apiVersion": rbacGroup + "/v1", "kind": "ClusterRole",
			"metadata": map[string]any{"name": claimsRole, "labels": labels(), "annotations": annotations()},
			"rules":    claimRules(r.claims),
		}
	}
	return out, nil
}

// claimRules gives one rule per API group with its resources sorted, as ours does.
func claimRules(claims []claim) []any {
	byGroup := map[string]map[string]bool{}
	for _, c := range claims {
		if byGroup[c.group] == nil {
			byGroup[c.group] = map[string]bool{}
		}
		byGroup[c.group][c.resource] = true
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	rules := make([]any, 0, len(groups))
	for _, g := range groups {
		resources := make([]string, 0, len(byGroup[g]))
		for r := range byGroup[g] {
			resources = append(resources, r)
		}
		sort.Strings(resources)
		rules = append(rules, map[string]any{"apiGroups": strs(g), "resources": strs(resources...),
			"verbs": strs("get", "list", "watch", "create", "update", "patch", "delete")})
	}
	return rules
}
