# stat-lifetimes.gp: how long the blocks of one trace (or process) lived, from
# `heaplab stat`: in events (allocations and frees from a block's allocation to its
# free, power-of-two buckets) and, when the trace has timestamps, in time (decades), side
# by side.  The blocks never freed (the leaks) get their own bar at the right of each
# panel, in another colour, so that short-lived churn and leaks are seen together.
# Preamble variables (besides those of common.gp):
#   datafile     index 0: events panel, index 1: time panel; rows "bucket label" blocks
#                never_freed(0/1) "value label" (NaN where a bucket is empty: no bar)
#   chart_title
#   has_time     1: draw the time panel (the trace has timestamps)
#   nev, nns     rows in each index
#   ev_log, ns_log, ev_ymin, ev_ymax, ns_ymin, ns_ymax, ev_format, ns_format
#   (ev_tics, ns_tics: unused, always "": counts get gnuplot's own tics)
#   ev_ylabel, ns_ylabel, ev_xlabel, ns_xlabel
#   value_labels 1: print each bar's value above it
#   ev_xrotate, ns_xrotate   degrees to rotate the bucket labels by
load tpldir . "/common.gp"

freed_rgb = 0x0072B2    # the same blue as the blocks of the size chart
leaked_rgb = 0xD55E00
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.8 absolute  # x is the bucket index: empty buckets must not widen a bar
set xtics scale 0
# The legend sits in the top right corner of the image, where it takes no room from
# the panels (which then line up) and covers no bar.
set key at screen 0.99, 0.99 right top horizontal samplen 1.5 spacing 1.1
barcolor(c) = c > 0 ? leaked_rgb : freed_rgb

if (has_time) {
    set multiplot layout 1, 2 title chart_title font ",13"
    set title "in events" font ",11"
} else {
    set title chart_title
}
set lmargin 12
set xrange [-0.6:nev - 0.4]
if (ev_xrotate != 0) {
    set xtics rotate by ev_xrotate right
} else {
    set xtics norotate
}
set xlabel ev_xlabel
set ylabel ev_ylabel
if (ev_log) {
    set logscale y
} else {
    unset logscale y
}
set format y ev_format
set yrange [ev_ymin:ev_ymax]
plot datafile index 0 using 0:2:(barcolor(column(3))):xtic(1) with boxes lc rgb variable notitle, \
     NaN with boxes lc rgb "#0072B2" title "freed", \
     NaN with boxes lc rgb "#D55E00" title "never freed", \
     datafile index 0 using 0:2:(value_labels ? stringcolumn(4) : "") with labels offset 0, 0.6 font ",8" tc rgb "#333333" notitle

if (has_time) {
    set title "in time" font ",11"
    set xrange [-0.6:nns - 0.4]
    if (ns_xrotate != 0) {
        set xtics rotate by ns_xrotate right
    } else {
        set xtics norotate
    }
    set xlabel ns_xlabel
    set ylabel ns_ylabel
    if (ns_log) {
        set logscale y
    } else {
        unset logscale y
    }
    set format y ns_format
    set yrange [ns_ymin:ns_ymax]
    set key off
    plot datafile index 1 using 0:2:(barcolor(column(3))):xtic(1) with boxes lc rgb variable notitle, \
         datafile index 1 using 0:2:(value_labels ? stringcolumn(4) : "") with labels offset 0, 0.6 font ",8" tc rgb "#333333" notitle
    unset multiplot
}
