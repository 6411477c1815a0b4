# timeline.gp: memory over time for one trace: the trace's live bytes (grey area) and
# each allocator's RSS (one line each) against the position in the trace, so that
# fragmentation (the gap between a line and the area) and memory given back to the system
# (a line coming down) are visible.  The x axis is the number of events replayed, not
# wall time, so that allocators of different speeds line up.
# Preamble variables (besides those of common.gp):
#   datafile     index 0: "event live" (the trace's live bytes); index k (k = 1..nseries):
#                "event rss" for series k; values already scaled to `unit`
#   chart_title, unit ("KiB", "MiB" or "GiB"), xunit ("events", "k events", "M events")
#   nseries, series_name[], series_color[]   one entry per allocator with a timeline
load tpldir . "/common.gp"

set title chart_title
set xlabel "position in the trace (" . xunit . " replayed)"
set ylabel "memory (" . unit . ")"
set yrange [0:*]
set xrange [0:*]
set key outside right top vertical samplen 2 spacing 1.2
set style fill transparent solid 0.35 noborder
plot datafile index 0 using 1:2 with filledcurves y1=0 lc rgb "#888888" title "live bytes (trace)", \
     for [k=1:nseries] datafile index k using 1:2 with lines lw 2 lc rgb series_color[k] title series_name[k] . " RSS"
