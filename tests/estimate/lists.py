"""Junction-list rows the estimate tests share (format: docs/estimate.md)."""

from __future__ import annotations

HEADER = ("name,municipality,lat,lon,cycle_s,period,peak_hour,monitored_arm,note,"
          "N_lanes,N_limit_kmh,N_left_vph,N_through_vph,N_right_vph,"
          "E_lanes,E_limit_kmh,E_left_vph,E_through_vph,E_right_vph,"
          "S_lanes,S_limit_kmh,S_left_vph,S_through_vph,S_right_vph,"
          "W_lanes,W_limit_kmh,W_left_vph,W_through_vph,W_right_vph")
CROSS = ("Cross,Town A,55.60,12.40,60,07:00-08:00,07:00,S,,"
         "1,50,20,300,20,1,50,20,150,20,2,50,40,700,40,1,50,20,150,20")
TEE = ("Tee,Town A,55.61,12.41,60,07:00-08:00,07:00,,,"
       "1,50,30,300,0,1,50,40,0,40,1,50,0,500,30,0,,0,0,0")
BAD = ("Broken,Town B,55.62,12.42,abc,07:00-08:00,07:00,,,"
       "1,50,0,300,0,1,50,0,100,0,0,,0,0,0,0,,0,0,0")
