package console

import (
	"fmt"
	"strconv"
	"time"

	"github.com/varmenne/varmenne/admin"
)

// chart is a bar chart of counts per day, drawn by the template as inline SVG:
// no script, and no style attribute (the Content-Security-Policy allows neither);
// style.css colours it.
type chart struct {
	ID, Label     string
	Width, Height int
	Bars          []bar
	Max           int
	MaxY          int // y of the maximum's grid line
	BaseY         int // y of the axis
	First, Last   string
	LastX         int
	Total         int
}

// bar is one day's bar; Label is its count, written above a bar that is not empty.
type bar struct {
	X, Y, W, H int
	Day        string
	Count      int
	LabelX     int
	LabelY     int
}

const (
	chartWidth  = 640
	chartHeight = 180
	chartLeft   = 36 // room for the scale
	chartTop    = 18 // room for the counts above the bars
	chartBottom = 22 // room for the dates
)

// newChart lays the days out: one bar per day, scaled to the largest count.
func newChart(id, label string, days []admin.DayView, total int) chart {
	c := chart{ID: id, Label: label, Width: chartWidth, Height: chartHeight, Total: total}
	c.BaseY = chartHeight - chartBottom
	for _, d := range days {
		c.Max = max(c.Max, d.Count)
	}
	scale := max(c.Max, 1)
	plot := c.BaseY - chartTop
	c.MaxY = c.BaseY - plot
	if len(days) == 0 {
		return c
	}
	step := (chartWidth - chartLeft) / len(days)
	for i, d := range days {
		h := d.Count * plot / scale
		if d.Count > 0 && h == 0 {
			h = 1
		}
		x := chartLeft + i*step
		c.Bars = append(c.Bars, bar{X: x + 1, Y: c.BaseY - h, W: step - 2, H: h, Day: d.Day.Format(time.DateOnly), Count: d.Count,
			LabelX: x + step/2, LabelY: c.BaseY - h - 4})
	}
	c.First, c.Last = days[0].Day.Format("2 Jan"), days[len(days)-1].Day.Format("2 Jan")
	c.LastX = chartLeft + len(days)*step
	return c
}

// Describe is the chart in words, for its aria-label.
func (c chart) Describe() string {
	return fmt.Sprintf("%s: %s certificates from %s to %s, at most %s on one day", c.Label, strconv.Itoa(c.Total), c.First, c.Last, strconv.Itoa(c.Max))
}
