package inventory

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/dstackai/dstack-go/agent"
)

// NvidiaGPUs lists the NVIDIA GPUs that nvidia-smi reports, or none when
// nvidia-smi is not on PATH.
func NvidiaGPUs(ctx context.Context) ([]agent.GPU, error) {
	out, found, err := runTool(ctx, "nvidia-smi",
		"--query-gpu=index,uuid,name,memory.total,driver_version", "--format=csv,noheader,nounits")
	if !found || err != nil {
		return nil, err
	}
	return parseNvidiaGPUs(out)
}

// parseNvidiaGPUs parses nvidia-smi's CSV: one GPU a line,
// "0, GPU-..., NVIDIA H100 80GB HBM3, 81559, 550.54.15", memory in MiB.
func parseNvidiaGPUs(out []byte) ([]agent.GPU, error) {
	rows, err := readCSV(out, 5)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi: %w", err)
	}
	gpus := make([]agent.GPU, 0, len(rows))
	for _, r := range rows {
		index, err := strconv.Atoi(r[0])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi: GPU index %q: %w", r[0], err)
		}
		gpus = append(gpus, agent.GPU{
			Vendor:   "nvidia",
			Index:    index,
			UUID:     r[1],
			Name:     r[2],
			MemoryMB: number(r[3]),
			Driver:   r[4],
		})
	}
	return gpus, nil
}

// GPUUsage is one GPU's current use.
type GPUUsage struct {
	Index              int
	UUID               string
	UtilizationPercent float64
	MemoryUsedMB       int64
}

// NvidiaUsage reports the use of every NVIDIA GPU, or nothing when
// nvidia-smi is not on PATH.
func NvidiaUsage(ctx context.Context) ([]GPUUsage, error) {
	out, found, err := runTool(ctx, "nvidia-smi",
		"--query-gpu=index,uuid,utilization.gpu,memory.used", "--format=csv,noheader,nounits")
	if !found || err != nil {
		return nil, err
	}
	rows, err := readCSV(out, 4)
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi: %w", err)
	}
	usage := make([]GPUUsage, 0, len(rows))
	for _, r := range rows {
		index, err := strconv.Atoi(r[0])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi: GPU index %q: %w", r[0], err)
		}
		util, _ := strconv.ParseFloat(r[2], 64) // "[N/A]" on some boards: 0
		usage = append(usage, GPUUsage{Index: index, UUID: r[1], UtilizationPercent: util, MemoryUsedMB: number(r[3])})
	}
	return usage, nil
}

// readCSV reads nvidia-smi's noheader CSV, each row with n fields.
func readCSV(out []byte, n int) ([][]string, error) {
	cr := csv.NewReader(bytes.NewReader(out))
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = n
	var rows [][]string
	for {
		r, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse output: %w", err)
		}
		for i := range r {
			r[i] = strings.TrimSpace(r[i])
		}
		rows = append(rows, r)
	}
}

// number parses a count; values such as "[N/A]" read as 0.
func number(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// AMDGPUs lists the AMD GPUs that rocm-smi reports, or none when rocm-smi
// is not on PATH.
func AMDGPUs(ctx context.Context) ([]agent.GPU, error) {
	out, found, err := runTool(ctx, "rocm-smi",
		"--showproductname", "--showmeminfo", "vram", "--showuniqueid", "--showdriverversion", "--json")
	if !found || err != nil {
		return nil, err
	}
	return parseROCmSMI(out)
}

// parseROCmSMI parses rocm-smi's JSON: an object per "cardN" of string
// fields, and a "system" object. The field names changed case between
// ROCm releases ("Card series", "Card Series"), so they are matched
// without case.
func parseROCmSMI(out []byte) ([]agent.GPU, error) {
	var doc map[string]map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("rocm-smi: parse output: %w", err)
	}
	driver := field(doc["system"], "driver version")
	var gpus []agent.GPU
	for key, card := range doc {
		idx, ok := strings.CutPrefix(key, "card")
		if !ok {
			continue
		}
		index, err := strconv.Atoi(idx)
		if err != nil {
			continue
		}
		name := field(card, "card series")
		if name == "" {
			name = field(card, "card model")
		}
		gpus = append(gpus, agent.GPU{
			Vendor:   "amd",
			Index:    index,
			Name:     name,
			MemoryMB: number(field(card, "vram total memory (b)")) >> 20,
			UUID:     field(card, "unique id"),
			Driver:   driver,
		})
	}
	slices.SortFunc(gpus, func(a, b agent.GPU) int { return a.Index - b.Index })
	return gpus, nil
}

func field(obj map[string]any, name string) string {
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			return strings.TrimSpace(fmt.Sprint(v))
		}
	}
	return ""
}
