# latency.gp: call latency of one trace, malloc and free side by side (two panels), each
# a group of bars per percentile (p50, p99, p99.9, max) with allocators side by side, on a
# logarithmic axis of CPU cycles.
# Preamble variables (besides those of common.gp):
#   datafile     index 0: malloc, index 1: free; rows "percentile label" then one column
#                per allocator (NaN where not measured)
#   chart_title  the whole figure's title (names the trace)
#   nalloc, alloc_name[], alloc_color[]   as in bars.gp
#   has_free     1 if the free panel has any value (otherwise malloc takes the whole width)
#   ymin, ymax   the y range shared by both panels (whole decades)
load tpldir . "/common.gp"

set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.95 relative
set logscale y
set yrange [ymin:ymax]
set format y "%.0s%c"
set ylabel "CPU cycles per call (log scale)"
set xtics scale 0 norotate
set xrange [-0.6:3.6]
set key outside right top vertical samplen 2 spacing 1.2 title "allocator" left

if (has_free) {
    set multiplot layout 1, 2 title chart_title font ",13"
    set title "malloc"
    set key off
    plot for [i=1:nalloc] datafile index 0 using i+1:xtic(1) title alloc_name[i] lc rgb alloc_color[i]
    set title "free"
    set key on
    unset ylabel
    plot for [i=1:nalloc] datafile index 1 using i+1:xtic(1) title alloc_name[i] lc rgb alloc_color[i]
    unset multiplot
} else {
    set title chart_title . " (malloc)"
    plot for [i=1:nalloc] datafile index 0 using i+1:xtic(1) title alloc_name[i] lc rgb alloc_color[i]
}
