// helm_render renders a Helm chart the way `helm template` does, for the test suite on
// machines where no Helm binary can be installed (Debian bookworm ships none; npm's helm
// packages download it at install time). It uses the libraries Helm renders with — Go's
// text/template and Sprig v3 (Debian's golang-github-masterminds-sprig-dev) — plus Helm's own
// template functions (include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup) and
// its conventions: values.yaml merged under --values files, .Release, .Chart, .Capabilities
// (minimal), missing keys render empty, files starting with "_" define templates only, empty
// documents are dropped.
//
//	helm_render [--release NAME] [--namespace NS] [--values FILE]... CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

// merge overlays src on dst as Helm merges values files: maps merge key by key, anything
// else replaces.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if sv, ok := v.(map[string]interface{}); ok {
			if dv, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func main() {
	release := flag.String("release", "strata", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	var values valueFiles
	flag.Var(&values, "values", "values file (repeatable; later files win)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: helm_render [--release NAME] [--namespace NS] [--values FILE]... CHART_DIR")
		os.Exit(2)
	}
	chartDir := flag.Arg(0)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helm_render:", err)
		os.Exit(1)
	}

	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		fail(err)
	}
	vals, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		fail(err)
	}
	for _, f := range values {
		extra, err := readYAML(f)
		if err != nil {
			fail(err)
		}
		vals = merge(vals, extra)
	}
	// Helm exposes Chart.yaml's fields capitalized (.Chart.Name, .Chart.AppVersion).
	chartData := map[string]interface{}{}
	for k, v := range chart {
		chartData[strings.ToUpper(k[:1])+k[1:]] = v
	}
	data := map[string]interface{}{
		"Values":       vals,
		"Chart":        chartData,
		"Release":      map[string]interface{}{"Name": *release, "Namespace": *namespace, "Service": "Helm", "IsInstall": true},
		"Capabilities": map[string]interface{}{"KubeVersion": map[string]interface{}{"Version": "v1.30.0"}},
	}

	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // Helm removes these two
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		_ = yaml.Unmarshal([]byte(s), &out)
		return out
	}
	funcs["toJson"] = func(v interface{}) string {
		data, _ := json.Marshal(v)
		return string(data)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		_ = json.Unmarshal([]byte(s), &out)
		return out
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf(msg)
		}
		return v, nil
	}
	funcs["lookup"] = func(...string) map[string]interface{} { return map[string]interface{}{} }
	root.Funcs(funcs).Option("missingkey=zero")

	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		fail(err)
	}
	sort.Strings(files)
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(text)); err != nil {
			fail(err)
		}
	}
	var out strings.Builder
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			fail(err)
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range strings.Split(rendered, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			fmt.Fprintf(&out, "---\n# Source: %s/templates/%s\n%s\n", chartData["Name"], name, strings.Trim(doc, "\n"))
		}
	}
	fmt.Print(out.String())
}
