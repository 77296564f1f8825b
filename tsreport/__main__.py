from tsreport.cli import main

main()
