package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
)

// runFile is the part of a report (this command's or `nano-vm-mcp bench
// --json`'s) that the summary reads.
type runFile struct {
	Results []struct {
		ID                 string   `json:"id"`
		Name               string   `json:"name"`
		Unit               string   `json:"unit"`
		Throughput         float64  `json:"throughput_per_s"`
		P50MS              float64  `json:"p50_ms"`
		P95MS              float64  `json:"p95_ms"`
		CPUMSPerItem       *float64 `json:"cpu_ms_per_item"`
		ServerCPUMSPerItem *float64 `json:"server_cpu_ms_per_item"`
		ServerCPU          string   `json:"server_cpu"`
	} `json:"results"`
	OK bool `json:"ok"`
}

var runSuffix = regexp.MustCompile(`-\d+\.json$`)

// summarize reads reports named LABEL-N.json (N the repetition) and prints,
// per label and scenario, the median and min–max of each figure over the
// repetitions, then each label's median throughput and p95 against the
// label "dbos".
func summarize(w io.Writer, files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("summarize: no files (want LABEL-N.json reports)")
	}
	type key struct{ label, scenario string }
	type series struct {
		unit                     string
		tput, p50, p95, cpu, srv []float64
		runs, broken             int
	}
	data := map[key]*series{}
	var keys []key
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("summarize: %w", err)
		}
		var rf runFile
		if err := json.Unmarshal(b, &rf); err != nil {
			return fmt.Errorf("summarize: %s: %w", f, err)
		}
		label := runSuffix.ReplaceAllString(filepath.Base(f), "")
		for _, r := range rf.Results {
			k := key{label, r.Name}
			s := data[k]
			if s == nil {
				s = &series{unit: r.Unit}
				data[k] = s
				keys = append(keys, k)
			}
			s.runs++
			if !rf.OK {
				s.broken++
			}
			s.tput, s.p50, s.p95 = append(s.tput, r.Throughput), append(s.p50, r.P50MS), append(s.p95, r.P95MS)
			if r.CPUMSPerItem != nil {
				s.cpu = append(s.cpu, *r.CPUMSPerItem)
			}
			if r.ServerCPUMSPerItem != nil && strings.HasPrefix(r.ServerCPU, "included") {
				s.srv = append(s.srv, *r.ServerCPUMSPerItem)
			}
		}
	}
	slices.SortStableFunc(keys, func(a, b key) int { return strings.Compare(a.scenario, b.scenario) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tscenario\truns\tthroughput/s median (min–max)\tp50 ms median (min–max)\tp95 ms median (min–max)\tCPU ms/item\tserver CPU ms/item\t")
	for _, k := range keys {
		s := data[k]
		note := ""
		if s.broken > 0 {
			note = fmt.Sprintf(" (%d run(s) broke invariants)", s.broken)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d%s\t%s %s\t%s\t%s\t%s\t%s\t\n", k.label, k.scenario, s.runs, note,
			spread(s.tput, 0), s.unit, spread(s.p50, 2), spread(s.p95, 2), spread(s.cpu, 2), spread(s.srv, 2))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, k := range keys {
		if k.label == "dbos" {
			continue
		}
		base := data[key{"dbos", k.scenario}]
		if base == nil {
			continue
		}
		s := data[k]
		fmt.Fprintf(w, "%s %s vs dbos: throughput %.1f× (median over median), p95 %.2f ms vs %.2f ms\n",
			k.label, k.scenario, median(s.tput)/median(base.tput), median(s.p95), median(base.p95))
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64, prec int) string {
	if len(v) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, median(v), prec, slices.Min(v), prec, slices.Max(v))
}
