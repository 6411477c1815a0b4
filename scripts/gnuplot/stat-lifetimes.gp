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
#   ev_tics, ns_tics   "1" for a step of one block on small linear axes, else ""
#   ev_ylabel, ns_ylabel, ev_xlabel, ns_xlabel
#   value_labels 1: print each bar's value above it
#   ev_xrotate, ns_xrotate   degrees to rotate the bucket labels by
load tpldir . "/common.gp"

freed_rgb = 0x0072B2    # the same blue as the blocks of the size chart
leaked_rgb = 0xD55E00
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.8 absolute  # x is the bucket index: empty buckets must not widen a bar
set xtics scale 0
# No legend: the leaks' bar is named on the x axis ("never freed"), its colour only
# sets it apart.
set key off
barcolor(c) = c > 0 ? leaked_rgb : freed_rgb

# Margins in pixels, so that the panels line up and keep their size whatever the image
# size; more room at the bottom for rotated bucket labels ("never freed" is long).
rot_px = (ev_xrotate != 0 || ns_xrotate != 0 ? 55.0 : 0.0)
if (has_time) {
    set multiplot layout 1, 2 title chart_title font ",13" \
        margins 80.0 / width, 1.0 - 20.0 / width, (55.0 + rot_px) / height, 1.0 - 72.0 / height \
        spacing 90.0 / width, 0
    set title "in events" font ",11"
} else {
    set title chart_title
    set lmargin at screen 80.0 / width
    set rmargin at screen 1.0 - 20.0 / width
    set bmargin at screen (55.0 + rot_px) / height
    set tmargin at screen 1.0 - 50.0 / height
}
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
if (ev_tics ne "") {
    set ytics @ev_tics
}
set yrange [ev_ymin:ev_ymax]
plot datafile index 0 using 0:2:(barcolor(column(3))):xtic(1) with boxes lc rgb variable notitle, \
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
    if (ns_tics ne "") {
        set ytics @ns_tics
    } else {
        set ytics autofreq
    }
    set yrange [ns_ymin:ns_ymax]
    plot datafile index 1 using 0:2:(barcolor(column(3))):xtic(1) with boxes lc rgb variable notitle, \
         datafile index 1 using 0:2:(value_labels ? stringcolumn(4) : "") with labels offset 0, 0.6 font ",8" tc rgb "#333333" notitle
    unset multiplot
}
